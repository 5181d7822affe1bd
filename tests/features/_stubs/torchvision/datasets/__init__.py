"""Dataset classes are unavailable in the stub."""


class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision stub: datasets are not available")


CIFAR100 = CIFAR10 = MNIST = KMNIST = FashionMNIST = ImageFolder = QMNIST = _Unavailable
