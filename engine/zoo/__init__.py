"""The Fashion-MNIST model zoo: architectures, training, and the committed manifest (issue 4)."""
