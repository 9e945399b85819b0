from alexnet_lit.models.alexnet import AlexNet, check, feature_map_sizes

__all__ = ["AlexNet", "check", "feature_map_sizes"]
