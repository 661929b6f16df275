#!/usr/bin/env bash
# Set up .venv with the plot and web extras, train the seed notebook's network on all 60k MNIST training images (no
# validation hold-out), print the test accuracy on the 10k test images and write the run's report.html (curves,
# filters, feature maps, confusion matrix, mistakes); then say how to open it and how to start the drawing page.
# Extra arguments go to `convnp train` (see its --help); the run folder is runs/demo-<date>-<time> unless --out says.
source "$(dirname "$0")/_venv.sh" "plot,web"
run="runs/demo-$(date +%Y%m%d-%H%M%S)"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do  # the user's own --out (or --out=DIR) names the run folder
    case "${args[i]}" in
        --out) run="${args[i + 1]:-$run}" ;;
        --out=*) run="${args[i]#--out=}" ;;
    esac
done
.venv/bin/convnp train --val-split 0 --out "$run" "$@"
report="$run/report.html"
[ -f "$report" ] || { echo "demo: $report was not written (see above)" >&2; exit 1; }
cat <<EOF

Pictures of the run (curves, filters, feature maps, confusion matrix, mistakes), one self-contained file:
  $report
  open it in a browser: file://$(cd "$run" && pwd)/report.html   (on a desktop: xdg-open $report)
Draw digits for the model you just trained, then open http://127.0.0.1:8000/ :
  .venv/bin/convnp serve $run
or for a pretrained one, no training needed (.venv/bin/convnp models --pretrained lists them):
  .venv/bin/convnp serve mnist-best
EOF
