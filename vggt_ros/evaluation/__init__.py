"""Rosbag replay evaluation: read a bag, run the Reconstructor on every frame, score, report."""
