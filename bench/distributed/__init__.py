"""Layer 3, sharded backends: rank groups over torch.distributed, planned and timed through the engine's clock."""
