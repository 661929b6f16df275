#!/usr/bin/env bash
# Set up .venv with pdoc and the optional extras the documented modules use (plots, web page, images, ONNX), then
# build the API reference from the docstrings into docs/api/ (open docs/api/index.html). Extra arguments go to
# scripts/docs.py (--out DIR).
source "$(dirname "$0")/_venv.sh" "docs,plot,web,image,onnx"
exec .venv/bin/python scripts/docs.py "$@"
