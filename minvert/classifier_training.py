"""``minvert train``'s loop: a classifier trained with softmax cross-entropy on the shared loop
of :mod:`minvert.training` (checkpoints, resume, Ctrl-C), with a cosine learning-rate schedule."""
import numpy as np

from .backend import to_numpy
from .layers.loss import check_class_bounds, class_bounds, softmax_cross_entropy
from .training import run_epochs


def accuracy(net, x, labels, batch_size=256):
    """Fraction of ``x`` (already preprocessed, (N, 3, H, W)) classified as ``labels``."""
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = net.predict(net.xp.asarray(x[i:i + batch_size]))  # to the net's device
        predicted = to_numpy(logits.argmax(axis=1))  # (batch,) on the host, beside the labels
        correct += int((predicted == to_numpy(labels[i:i + batch_size])).sum())
    return correct / max(len(x), 1)


def cosine_lr(lr0, epoch, epochs):
    """Cosine annealing from lr0 (first epoch) towards 0 (after the last)."""
    # a Python float: a NumPy float64 makes float32 updates compute in float64 (NumPy 2 promotion)
    return float(lr0 * 0.5 * (1 + np.cos(np.pi * epoch / epochs)))


def train_classifier(net, optimizer, x_train, y_train, x_val, y_val, out_dir, epochs=10,
                     batch_size=32, seed=0, resume=False, log=print, on_step=None, schedule="cosine"):
    """Train ``net`` with softmax cross-entropy; x already preprocessed (N, 3, H, W).
    schedule: "cosine" (learning rate annealed per epoch) or "constant"."""
    lr0 = optimizer.lr

    def on_epoch(epoch):
        if schedule == "cosine":
            optimizer.lr = cosine_lr(lr0, epoch, epochs)
    net.layers[net.names[0]].need_dx = False  # nobody needs the gradient w.r.t. the pixels
    xp = net.xp
    x_train, y_train = xp.asarray(x_train), xp.asarray(y_train)  # the training set on the net's device

    def step(idx):
        idx = xp.asarray(idx)  # the epoch's shuffle is drawn on the host
        logits, labels = net.forward(x_train[idx]), y_train[idx]
        loss, dlogits = softmax_cross_entropy(logits, labels, check_indices=False)
        correct = (logits.argmax(axis=1) == labels).sum()  # before backward may reuse logits
        net.backward(dlogits)
        optimizer.step(net.parameters())
        # loss, correct count and the label check in ONE transfer after the update: the host
        # waits for the device once per step (float64: exact for these numbers)
        numbers = to_numpy(xp.concatenate([xp.stack([loss.astype(np.float64),
                                                      correct.astype(np.float64)]),
                                           class_bounds(labels).astype(np.float64)]))
        check_class_bounds(numbers[2:], logits.shape[1])
        return float(numbers[0]), int(numbers[1]), len(idx)

    def evaluate(epoch):
        return {"val_accuracy": accuracy(net, x_val, y_val)} if len(x_val) else {}

    return run_epochs(net, optimizer, step, len(x_train), out_dir, epochs, batch_size, seed,
                      resume=resume, evaluate=evaluate, log=log, on_step=on_step, on_epoch=on_epoch)
