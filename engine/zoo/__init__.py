"""The Fashion-MNIST model zoo: architectures, training, and the committed manifest
(assets/models/zoo.json; the models are registered from it on first use)."""
