"""vggt-bench: streaming cost and memory, as ratios measured side by side in one run.

Machines are noisy (this one is shared), so absolute times mean little: every figure is the
min/median/max over repeats, the things compared are stepped in turn (noise hits them alike), and
conclusions are ratios of medians. Weights are random (the synthetic-weights recipe): timing does
not depend on their values. CPU runs are fp32 (what precision='auto' gives there).

Modules, one idea each (the report's section numbers in brackets):
- harness: timing, stats, sessions stepped in turn (Lane, Series), RSS and slopes;
- tokens: a frame's token layout (patch grid, special tokens, RoPE tables);
- baselines: what ours is compared with, the reference-style cache and the naive re-run window;
- flops: the closed-form FLOP model and a step's share of the machine's matmul rate [6];
- streams: whole sessions of one model streamed side by side [1-3];
- blocks: one global block at 1B dimensions, ours vs the reference-style store [4];
- token_merging: FastVGGT merging on vs off, one block and whole steps [5];
- node_run: a StreamNode beside a peer over real rclpy (the tests' Harness too);
- node: the node's own cost and a chaos soak through it [7, 10], imported only where rclpy is;
- memory, gpu, heads, evaluator: [8], [9], heads on demand [11], evaluator memory [12];
- reanchoring, accuracy: re-anchoring's cost [13]; each speed option's accuracy with the shipped
  small model on held-out worlds [14];
- report: the markdown; cli: `vggt-bench`.
"""
