"""The benchmark's report as Markdown tables: what stdout and bench.md show, from bench.json's
dict (sections in their numbered order)."""

from __future__ import annotations

from typing import Any

from vggt_ros.bench.accuracy import accuracy_markdown
from vggt_ros.bench.blocks import BLOCK_PRESET
from vggt_ros.bench.reanchoring import reanchoring_markdown
from vggt_ros.bench.streams import FLAT_TARGET
from vggt_ros.bench.token_merging import MERGE_TARGET, MERGE_TARGET_WINDOW


def _ms(times: dict[str, float]) -> str:
    return ' / '.join(f'{1e3 * times[key]:.4g}' for key in ('min', 'median', 'max'))


def _mb(count: int) -> str:
    return f'{count / 1e6:.3g} MB'


def _row(*cells: object) -> str:
    return '| ' + ' | '.join(str(cell) for cell in cells) + ' |'


def _label(result: dict[str, Any]) -> str:
    height, width = result['image_size']
    return f'{result["preset"]} {height}x{width}'


def _block_label(section: dict[str, Any]) -> str:
    height, width = section['image_size']
    return f'{BLOCK_PRESET} global block, {height}x{width}'


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (what stdout and bench.md show)."""
    env = report['environment']
    results = report['results']
    lines = [
        '# vggt-bench',
        '',
        f'torch {env["torch"]}, {env["device"]}, {env["threads"]} threads, {env["platform"]}; '
        f'wall {report["wall_s"]:.0f} s; `{env["command"]}`',
        '',
        'Random weights, fp32. Step times in ms: min / median / max over repeats of the same '
        'step, each from a copy of the session state (repeats: '
        + ', '.join(f'{result["preset"]} {result["repeats"]}' for result in results)
        + '). Frame n attends over n cached frames, itself included (at most W with a window). '
        'The sessions compared are stepped in turn, frame by frame; ratios are of medians.',
        '',
        f'## 1. Flat cost with a window (target <= {FLAT_TARGET} with a window)',
        '',
        '| model | P | cache | at frame W | at frame 8·W | 8·W / W |',
        '|---|---|---|---|---|---|',
    ]
    for result in results:
        for name, cost in result['flat_cost'].items():
            cache = f'window {result["window"]}' if name == 'window' else 'unbounded'
            low, high = cost['step_s']
            lines.append(
                f'| {_label(result)} | {result["tokens_per_frame"]} | {cache} | {_ms(low)} '
                f'| {_ms(high)} | {cost["ratio"]:.2f} |'
            )
    lines += frame_n_markdown(results)
    lines += [
        '',
        '## 2. Ours vs a reference-style step (cat raw K/V, re-norm and re-rotate the cache)',
        '',
        '| model | P | cached frames | ours | reference-style | reference / ours | '
        'max abs output difference |',
        '|---|---|---|---|---|---|---|',
    ]
    for result in results:
        ref = result['reference']
        lines.append(
            f'| {_label(result)} | {result["tokens_per_frame"]} | {ref["frame"]} '
            f'| {_ms(ref["ours_s"])} | {_ms(ref["reference_s"])} | {ref["ratio"]:.2f} '
            f'| {ref["max_abs_difference"]:.1e} |'
        )
    lines += [
        '',
        '## 3. Key/value cache bytes (per frame: global blocks; totals: all caches)',
        '',
        '| model | P | ours per frame | ours in bf16 | reference bf16 (2·depth·dim·2 B·P) '
        '| ours window W, total | growth after fill | ours unbounded, total '
        '| reference bf16, total |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for result in results:
        kv = result['kv_bytes']
        lines.append(
            f'| {_label(result)} | {result["tokens_per_frame"]} '
            f'| {_mb(kv["ours_per_frame"])} ({kv["ours_dtype"]}) '
            f'| {_mb(kv["ours_per_frame_bf16"])} '
            f'| {_mb(kv["reference_per_frame_bf16"])} '
            f'| {_mb(kv["window_total"])} (W={result["window"]}) '
            f'| {kv["window_growth_after_fill"]} B | {_mb(kv["unbounded_total"])} '
            f'({kv["frames"]} frames) | {_mb(kv["reference_total_bf16"])} ({kv["frames"]} frames) |'
        )
    lines += [
        '',
        "Ours unbounded is allocated by doubling (up to twice the frames held), in the run's "
        'dtype; the reference holds exactly its frames, in bf16 under autocast.',
    ]
    lines += block_markdown(report['global_block'])
    lines += merging_markdown(report['block_merging'], report['merging_steps'])
    lines += efficiency_markdown(report['matmul'], results)
    lines += node_markdown(report['node'])
    lines += memory_markdown(report['memory'])
    lines += gpu_markdown(report['gpu'])
    lines += chaos_markdown(report['chaos'])
    lines += heads_markdown(report['heads'])
    lines += evaluator_markdown(report['evaluator'])
    lines += reanchoring_markdown(report['reanchoring'])
    lines += accuracy_markdown(report['accuracy'])
    return '\n'.join(lines) + '\n'


def frame_n_markdown(results: list[dict[str, Any]]) -> list[str]:
    """Section 1's ratios at frame N: (a) window W, (b) unbounded, (c) reference-style, (d) naive
    (forward_causal over the last W frames for every frame)."""
    lines = [
        '',
        'At frame N = 8·W, stepped side by side: (a) window W, (b) unbounded, (d) naive; (c) the '
        "reference-style step beside (b) at section 2's frame.",
        '',
        '| model | N | (a) window | (b) unbounded | (d) naive | (b)/(a) | (c)/(b) at frame '
        '| (d)/(a) |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for result in results:
        at = result['at_frame_n']
        lines.append(
            _row(
                _label(result),
                at['frame'],
                _ms(at['window_s']),
                _ms(at['unbounded_s']),
                _ms(at['naive_s']),
                f'{at["unbounded_over_window"]:.2f}',
                f'{at["reference_over_unbounded"]:.2f} at {at["reference_frame"]}',
                f'{at["naive_over_window"]:.2f}',
            )
        )
    return lines


def block_markdown(section: dict[str, Any]) -> list[str]:
    """Section 4's table."""
    return [
        '',
        '## 4. One global block at 1B dimensions: ours vs the reference-style store',
        '',
        'A new frame of P tokens through one global block (QK-norm, RoPE) against a cache '
        'pre-filled with random keys/values; ours with a full window of the cached frames (each '
        'step evicts one frame and appends one), the reference-style store concatenating and '
        're-normalising and re-rotating all cached keys. Repeats: '
        f'{section["repeats"]}, after one untimed step each.',
        '',
        '| block | P | cached frames | cached tokens | ours | reference-style | reference / ours |',
        '|---|---|---|---|---|---|---|',
        _row(
            _block_label(section),
            section['tokens_per_frame'],
            section['cached_frames'],
            section['cached_tokens'],
            _ms(section['ours_s']),
            _ms(section['reference_s']),
            f'{section["ratio"]:.2f}',
        ),
    ]


def _merging_cells(row: dict[str, Any]) -> list[str]:
    """The columns that sections 5a and 5b share, from the window on."""
    return [
        str(row['window']),
        f'{row["off"]["cached_tokens"]} / {row["on"]["cached_tokens"]}',
        _ms(row['off']['step_s']),
        _ms(row['on']['step_s']),
        f'{row["ratio"]:.2f}',
        f'{row["flops_off"] / 1e9:.4g} / {row["flops_on"] / 1e9:.4g} G = {row["flops_ratio"]:.2f}',
    ]


def _verdict(target: dict[str, Any]) -> str:
    if target['met'] is None:
        return f'Target not measured: window {target["window"]} was not run.'
    verdict = 'met' if target['met'] else 'NOT met'
    return (
        f'Target at window {target["window"]}: off / on = {target["ratio"]:.2f} '
        f'(>= {target["target"]:g} wanted): **{verdict}**.'
    )


def merging_markdown(block: dict[str, Any], steps: list[dict[str, Any]]) -> list[str]:
    """Section 5's tables: (a) one global block, (b) whole steps."""
    header = (
        '| {} | P | W | cached tokens off / on | off | on | off / on '
        '| global-attention FLOPs off / on (closed form) |'
    )
    lines = [
        '',
        f'## 5. Token merging on vs off (target: off / on >= {MERGE_TARGET:g} at window '
        f'{MERGE_TARGET_WINDOW} on the global-attention share)',
        '',
        '(a) One global block at 1B dimensions with a full window W, caches pre-filled as in 4: '
        'off = anchor + W-1 whole frames; on = anchor whole + W-1 merged frames of '
        f"{block['kept_per_merged_frame']} tokens, the new frame merged by the session's code "
        'path. The FLOPs count QK^T, PV and matching only; the times include qkv, proj and the '
        f'MLP on all P tokens. Repeats: {block["repeats"]}, after one untimed step each.',
        '',
        header.format('block'),
        '|---|---|---|---|---|---|---|---|',
    ]
    lines += [
        _row(_block_label(block), block['tokens_per_frame'], *_merging_cells(row))
        for row in block['windows']
    ]
    lines += ['', _verdict(block['target'])]
    if not steps:
        return lines
    lines += [
        '',
        '(b) Whole steps, for honesty: sessions with window W, merging off and on, streamed side '
        'by side; frame W+1 timed (repeats: '
        + ', '.join(f'{result["preset"]} {result["repeats"]}' for result in steps)
        + '). DINO, the frame blocks, the MLPs and the heads do not shrink with merging.',
        '',
        header.format('model'),
        '|---|---|---|---|---|---|---|---|',
    ]
    lines += [
        _row(_label(result), result['tokens_per_frame'], *_merging_cells(row))
        for result in steps
        for row in result['windows']
    ]
    return lines


def efficiency_markdown(matmul: dict[str, Any], results: list[dict[str, Any]]) -> list[str]:
    """Section 6's table."""
    m, k, n = matmul['size']
    lines = [
        '',
        '## 6. Efficiency: closed-form model FLOPs per frame / median step time, vs torch.mm',
        '',
        f'Dense fp32 torch.mm [{m}x{k}] @ [{k}x{n}]: {_ms(matmul["mm_s"])} ms = '
        f'{matmul["flops_per_s"] / 1e9:.3g} GFLOP/s. FLOPs: 2 per multiply-add of the linear '
        'layers, convolutions and attention (QK^T, PV); norms and activations left out. Step: '
        '(a) at frame N.',
        '',
        '| model | frames attended | GFLOP per frame (DINO / frame / global / camera / DPT) '
        '| median step | achieved GFLOP/s | fraction of torch.mm |',
        '|---|---|---|---|---|---|',
    ]
    for result in results:
        eff = result['efficiency']
        parts = ' / '.join(
            f'{value / 1e9:.3g}' for name, value in eff['flops'].items() if name != 'total'
        )
        lines.append(
            _row(
                _label(result),
                eff['frames_attended'],
                f'{eff["flops"]["total"] / 1e9:.3g} ({parts})',
                f'{1e3 * eff["step_s"]["median"]:.4g} ms',
                f'{eff["achieved_flops_per_s"] / 1e9:.3g}',
                f'{eff["fraction_of_matmul"]:.2f}',
            )
        )
    return lines


def node_markdown(node: dict[str, Any]) -> list[str]:
    """Section 7's table, or why it was skipped."""
    lines = ['', '## 7. Node overhead (real rclpy)', '']
    if 'skipped' in node:
        return [*lines, f'Skipped: {node["skipped"]}.']
    publishing, e2e = node['publishing'], node['end_to_end']
    height, width = publishing['image_size']
    fraction = (
        f' = {node["fraction_of_step"]:.3g} of a {BLOCK_PRESET} step at that size (estimated: '
        f"{node['model_step_estimate_s']:.3g} s from section 6's achieved rate)"
        if 'fraction_of_step' in node
        else ''
    )
    return [
        *lines,
        f'Per frame at {height}x{width}: depth + CameraInfo, organised cloud and TF, converted '
        f'{_ms(publishing["convert_s"])} ms, published {_ms(publishing["publish_s"])} ms, '
        f'total {_ms(publishing["total_s"])} ms{fraction}.',
        '',
        f'End to end (tiny preset, {e2e["frames"]} frames at {height}x{width}, one at a time): '
        f'image published -> TF received {_ms(e2e["latency_s"])} ms, model '
        f'{_ms(e2e["model_s"])} ms, the rest (transport, decode, preprocessing, outputs) '
        f'{_ms(e2e["overhead_s"])} ms.',
        '',
        "The node's own work per camera frame (decode the rgb8 image; build depth, CameraInfo, "
        'cloud and TF at the model size; publish to subscribers) against a memcpy of the bytes it '
        'reads and writes, timed in turn:',
        '',
        '| input | model | bytes | node | memcpy | node / memcpy |',
        '|---|---|---|---|---|---|',
        *(
            _row(
                'x'.join(map(str, row['input_size'][::-1])),
                'x'.join(map(str, row['model_size'][::-1])),
                _mb(row['bytes']),
                _ms(row['node_s']),
                _ms(row['memcpy_s']),
                f'**{row["ratio"]:.2f}** (target <= {row["target"]:g})',
            )
            for row in node.get('cost', [])
        ),
    ]


def memory_markdown(memory: dict[str, Any]) -> list[str]:
    """Section 8's table."""
    height, width = memory['image_size']
    return [
        '',
        f'## 8. Memory over a long stream (tiny, {height}x{width}, window {memory["window"]}, '
        f'{memory["frames"]} frames)',
        '',
        'Slopes: least squares over the second half of the stream (window long full); want ~0.',
        '',
        '| | first frame | last frame | slope (B/frame) |',
        '|---|---|---|---|',
        _row(
            'RSS', *map(_mb, memory['rss_first_last']), f'{memory["rss_slope_bytes_per_frame"]:.3g}'
        ),
        _row(
            'KV cache',
            *map(_mb, memory['cache_first_last']),
            f'{memory["cache_slope_bytes_per_frame"]:.3g}',
        ),
    ]


def gpu_markdown(gpu: dict[str, Any]) -> list[str]:
    """Section 9: frames/s of the 1B preset on the GPU, or why it was skipped."""
    lines = ['', f'## 9. GPU: {BLOCK_PRESET} in bf16', '']
    if 'skipped' in gpu:
        return [*lines, f'Skipped: {gpu["skipped"]}.']
    height, width = gpu['image_size']
    return [
        *lines,
        f'{gpu["device"]}, {height}x{width}, window {gpu["window"]}, {gpu["frames"]} frames: '
        f'step {_ms(gpu["step_s"])} ms, **{gpu["frames_per_s"]:.3g} frames/s**.',
    ]


def chaos_markdown(chaos: dict[str, Any]) -> list[str]:
    """Section 10's figures, or why it was skipped."""
    lines = ['', '## 10. Chaos soak through the node (real rclpy, tiny preset, window 16)', '']
    if 'skipped' in chaos:
        return [*lines, f'Skipped: {chaos["skipped"]}.']
    counts, kinds = chaos['counts'], chaos['kinds']
    height, width = chaos['image_size']
    return [
        *lines,
        f'{chaos["frames"]} frames at {height}x{width}, 5% bad, a ~/reset every 500, a '
        'parameter flip every 250, time looping back 30 s every 1000; each frame awaited.',
        '',
        f'- stuck periods (a frame unaccounted for after 5 s): {chaos["stuck_periods"]} '
        f'(frames sent again: {chaos["resends"]})',
        f'- wait per frame, ms: {_ms(chaos["wait_s"])}',
        '- counts: ' + ', '.join(f'{name} {count}' for name, count in counts.items()),
        '- by kind: ' + ', '.join(f'{name} {count}' for name, count in sorted(kinds.items())),
        f'- RSS: {_mb(chaos["rss_first_last"][0])} -> {_mb(chaos["rss_first_last"][1])}, slope '
        f'over the second half {chaos["rss_slope_bytes_per_frame"]:.3g} B/frame',
        f'- distinct cache sizes after the window filled: '
        f'{chaos["cache_bytes_distinct_after_fill"]}',
    ]


def heads_markdown(heads: dict[str, Any]) -> list[str]:
    """Section 11: the point head's share of a step, and what it would copy to the host."""
    needed, every = (', '.join(heads['heads'][name]) for name in ('needed', 'all'))
    return [
        '',
        f'## 11. Heads on demand ({_label(heads)}, window {heads["window"]})',
        '',
        f'Two sessions stepped in turn, frame by frame: the heads the node and the evaluator '
        f'need ({needed}) vs all ({every}); {heads["frames"]} frames timed once the window was '
        f'full (the same outputs: max abs difference {heads["max_abs_difference"]:.1e}).',
        '',
        '| heads | P | step |',
        '|---|---|---|',
        _row(needed, heads['tokens_per_frame'], _ms(heads['needed_s'])),
        _row(every, heads['tokens_per_frame'], _ms(heads['all_s'])),
        '',
        f'All / needed = **{heads["all_over_needed"]:.3f}** (closed-form FLOPs: '
        f'{heads["flops_all_over_needed"]:.3f}); the point head would also copy '
        f'{heads["point_host_bytes_per_frame"] / 1e3:.4g} kB per frame to the host '
        '(world_points + conf, float32).',
    ]


def evaluator_markdown(evaluator: dict[str, Any]) -> list[str]:
    """Section 12: RSS of vggt-eval's replay over a long bag."""
    height, width = evaluator['image_size']
    frames, warmup = evaluator['frames'], evaluator['warmup_frames']
    kept = evaluator['trajectory_bytes']
    return [
        '',
        f'## 12. Evaluator memory over a long bag ({evaluator["preset"]}, {height}x{width}, '
        f'window {evaluator["window"]}, {frames} frames)',
        '',
        f'A synthetic RGB-D bag ({_mb(evaluator["bag_bytes"])}, written in '
        f"{evaluator['write_s']:.3g} s) replayed by vggt-eval's replay in "
        f'{evaluator["replay_s"]:.3g} s: {evaluator["processed"]} frames processed, depth '
        f'scored on {evaluator["depth_scored"]}. RSS (of the whole benchmark process) sampled '
        f'every {evaluator["rss_every"]} frames; the slope is least squares after warm-up (the '
        f'first {warmup} frames). Kept by design: the trajectory, {_mb(kept)} at the end '
        f'({kept / max(evaluator["processed"], 1):.3g} B/frame).',
        '',
        f'| | warm-up end (frame {warmup}) | end (frame {frames}) | slope (B/frame) |',
        '|---|---|---|---|',
        _row(
            'RSS',
            _mb(evaluator['rss_warmup_end']),
            _mb(evaluator['rss_end']),
            f'{evaluator["rss_slope_bytes_per_frame"]:.3g}',
        ),
    ]
