from alexnet_lit.models.alexnet import AlexNet, LRNSpec, feature_map_sizes

__all__ = ["AlexNet", "LRNSpec", "feature_map_sizes"]
