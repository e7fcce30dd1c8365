"""`python -m vggt_ros.bench`: the same as `vggt-bench`."""

from vggt_ros.bench.cli import main

main()
