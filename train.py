"""python train.py [overrides]: see alexnet_lit/cli/train.py and README.md."""

from alexnet_lit.cli.train import main

if __name__ == "__main__":
    main()
