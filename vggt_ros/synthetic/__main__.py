"""`python -m vggt_ros.synthetic` (the Makefile's demo) is `vggt-synth`."""

from vggt_ros.synthetic.cli import main

main()
