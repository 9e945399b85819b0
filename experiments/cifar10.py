"""A CIFAR-10 store from ../shared/data, made once (the study drivers make theirs themselves when absent).

    python experiments/cifar10.py 32                 # $CACHE/cifar10-32: data=cifar10_32 (Figure 1, section 3.3)
    python experiments/cifar10.py 72                 # $CACHE/cifar10-72: +proxy=cifar10 (make ablations)
    python experiments/cifar10.py 32 per_class=1000  # $CACHE/cifar10-32-1000pc: the first 1,000 images per class

How a store is made (unpacked, a per-class subset, alexnet-prepare): studies.py.
"""

import sys

import studies

if __name__ == "__main__":
    args = dict(a.split("=", 1) for a in sys.argv[2:] if "=" in a)
    if len(sys.argv) < 2 or not sys.argv[1].isdigit():
        print("error: usage: python experiments/cifar10.py SIZE [per_class=N]", file=sys.stderr)
        sys.exit(2)
    print(studies.store(int(sys.argv[1]), int(args["per_class"]) if "per_class" in args else None))
