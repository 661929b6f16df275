"""Train the seed notebook's network on MNIST with convnp's library API (no command line), in under 50 lines.

    python examples/train_mnist.py
"""

import numpy as np

from convnp import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from convnp.data import load_mnist
from convnp.data.transforms import Standardize
from convnp.optim import SGD
from convnp.schedules import Cosine
from convnp.train import ProgressBar, Trainer, evaluate

rng = np.random.default_rng(0)  # every random choice below draws from this one Generator

x_train, y_train, x_test, y_test = load_mnist()  # uint8 (60000, 28, 28), labels (60000,)
x_train, x_test = x_train[..., None], x_test[..., None]  # channels-last: (N, 28, 28, 1)
standardize = Standardize.fit(x_train)  # per-channel mean and std of the training pixels

model = Sequential(
    [
        Conv2D(1, 8, kernel_size=3, rng=rng),  # (N, 26, 26, 8)
        ReLU(),
        MaxPool2D(2),  # (N, 13, 13, 8)
        Flatten(),  # (N, 1352)
        Dense(13 * 13 * 8, 10, rng=rng),  # (N, 10) logits
    ],
    input_shape=(28, 28, 1),
)
print(model.summary())

epochs, batch_size = 5, 64
steps = epochs * -(-len(x_train) // batch_size)
trainer = Trainer(
    model,
    SGD(lr=0.05, momentum=0.9),
    schedule=Cosine(0.05, total_steps=steps),
    callbacks=[ProgressBar(epochs, len(x_train))],
)
trainer.fit(standardize(x_train), y_train.astype(np.int64), epochs=epochs, batch_size=batch_size, rng=rng)

result = evaluate(model, standardize(x_test), y_test.astype(np.int64))
print(f"test accuracy {result['accuracy']:.2%}, loss {result['loss']:.4f}")
