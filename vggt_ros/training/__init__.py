"""Training a StreamVGGT preset on rosbags with ground truth (`vggt-train`): data, losses, loop."""
