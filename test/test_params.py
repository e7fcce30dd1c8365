"""The parameter table, and config/stream.yaml and launch/stream.launch.py held to it by parsing."""

import ast
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from vggt_ros import config_files, outputs, param_options, params
from vggt_ros.model import PRESETS
from vggt_ros.model.streamvggt import PRECISIONS
from vggt_ros.tf_layout import TF_MODES

ROOT = Path(__file__).parent.parent
YAML_FILE = ROOT / 'config' / 'stream.yaml'
LAUNCH_FILE = ROOT / 'launch' / 'stream.launch.py'
RVIZ_FILE = ROOT / 'config' / 'stream.rviz'
BUILT_IN = {'use_sim_time'}  # declared by every rclpy node
# The launch arguments issue 5 asks for; those that are not node parameters configure the launch.
LAUNCH_ARGUMENTS = {
    'image',
    'depth',
    'camera_info',
    'params_file',
    'checkpoint',
    'tf_mode',
    'namespace',
    'use_sim_time',
    'use_rviz',
    'log_level',
}
LAUNCH_ONLY = {
    'image',
    'depth',
    'camera_info',
    'params_file',
    'namespace',
    'use_rviz',
    'log_level',
}


def flatten(tree, prefix=''):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from flatten(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


def yaml_parameters():
    document = yaml.safe_load(YAML_FILE.read_text())
    assert list(document) == ['/**'] and list(document['/**']) == ['ros__parameters']
    return dict(flatten(document['/**']['ros__parameters']))


def launch_tree():
    return ast.parse(LAUNCH_FILE.read_text())


def declared_launch_arguments(tree):
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument'
    }


def launch_parameter_keys(tree):
    """Keys the launch file sets as node parameters: dict literals and overrides[...] = ..."""
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            keys.add(node.slice.value)
    return keys


def test_yaml_holds_every_parameter_with_its_default():
    values = yaml_parameters()
    assert set(values) == set(params.SPECS)
    for name, value in values.items():
        default = params.DEFAULTS[name]
        assert value == default and type(value) is type(default), name


def test_yaml_documents_every_parameter():
    lines = [line.strip() for line in YAML_FILE.read_text().splitlines() if line.strip()]
    for previous, line in zip(lines, lines[1:], strict=False):
        if not line.startswith('#') and not line.endswith(':'):
            assert previous.startswith('#'), f'no comment above {line!r}'


def test_launch_arguments_and_parameters_are_declared():
    tree = launch_tree()
    arguments = declared_launch_arguments(tree)
    assert arguments == LAUNCH_ARGUMENTS
    declared = set(params.SPECS) | BUILT_IN
    assert arguments - LAUNCH_ONLY <= declared
    assert launch_parameter_keys(tree) <= declared
    assert arguments - LAUNCH_ONLY <= launch_parameter_keys(tree)


def test_launch_description_builds_where_launch_is_installed():
    pytest.importorskip('launch_ros')
    from ament_index_python.packages import PackageNotFoundError

    spec = importlib.util.spec_from_file_location('stream_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        description = module.generate_launch_description()
    except PackageNotFoundError:
        pytest.skip('vggt_ros is not installed in an ament prefix')
    names = {argument.name for argument in description.get_launch_arguments()}
    assert names == LAUNCH_ARGUMENTS


def test_the_launch_file_connects_the_cameras_topics():
    assert config_files.input_remappings('/camera/image_raw') == [
        ('image', '/camera/image_raw'),
        ('image/compressed', '/camera/image_raw/compressed'),
        ('camera_info', '/camera/camera_info'),
    ]
    named = config_files.input_remappings('image_raw', '/rs/depth', '/rs/color/camera_info')
    assert named[-2:] == [('camera_info', '/rs/color/camera_info'), ('depth', '/rs/depth')]
    assert ('camera_info', 'camera_info') in config_files.input_remappings('image_raw')
    assert config_files.camera_info_sibling('/cam/image_raw/compressed') == '/cam/camera_info'
    calls = [
        node for node in ast.walk(ast.parse(LAUNCH_FILE.read_text())) if isinstance(node, ast.Call)
    ]
    assert any(ast.unparse(call.func) == 'config_files.input_remappings' for call in calls)


def test_rviz_layout_shows_the_outputs_in_the_world_frame_in_force():
    layout = yaml.safe_load(RVIZ_FILE.read_text())['Visualization Manager']
    assert layout['Global Options']['Fixed Frame'] == param_options.fixed_frame(params.DEFAULTS)
    assert "'--fixed-frame'" in LAUNCH_FILE.read_text()  # the launch file follows tf_mode
    displays = {d['Class'].split('/')[-1]: d for d in layout['Displays']}
    assert {'TF', 'PointCloud2', 'Path', 'Image'} <= set(displays)
    topics = {d['Topic']['Value'] for d in layout['Displays'] if 'Topic' in d}
    assert topics == {f'/vggt_stream/{t}' for t in ('points', 'map', 'path', 'depth')}


def test_rviz_follows_the_nodes_namespace():
    assert config_files.rviz_config('') == config_files.rviz_config('/') == RVIZ_FILE
    layout = yaml.safe_load(config_files.rviz_config('/robot1').read_text())
    topics = {
        d['Topic']['Value'] for d in layout['Visualization Manager']['Displays'] if 'Topic' in d
    }
    assert topics == {f'/robot1/vggt_stream/{t}' for t in ('points', 'map', 'path', 'depth')}
    assert "rviz_config(LaunchConfiguration('namespace')" in LAUNCH_FILE.read_text()
    # Launching again rewrites the namespace's one copy: nothing piles up in /tmp.
    before = set(Path(tempfile.gettempdir()).iterdir())
    again = [config_files.rviz_config(name) for name in ('/robot1', 'robot1', 'fleet/robot2')]
    assert again[0] == again[1] != again[2]
    assert set(Path(tempfile.gettempdir()).iterdir()) - before <= {again[2]}


def test_defaults_are_valid_and_choices_match_the_code():
    assert params.validate(params.DEFAULTS) is None
    assert set(params.SPECS['preset'].choices) == set(PRESETS)
    assert set(params.SPECS['precision'].choices) == set(PRECISIONS)
    assert set(params.SPECS['world_axes'].choices) == set(outputs.WORLD_AXES)


@pytest.mark.parametrize(
    ('name', 'value', 'reason'),
    [
        ('window_size', 1, '2 (the anchor frame and the current one) to 4096'),
        ('window_size', -3, '2 (the anchor frame and the current one) to 4096'),
        ('window_size', 10**9, 'to 4096'),
        ('scale', 1e39, 'at most'),
        ('map.voxel_size', 1e-6, 'at least'),
        ('diagnostics_period', 1e10, 'at most'),
        ('device', 'gpu', 'cuda'),
        ('preset', 'huge', 'one of'),
        ('conf_threshold', -1.0, 'at least'),
        ('scale', 0.0, 'at least'),
        ('frame_stride', 0, 'at least'),
        ('frame_stride', True, 'must be a int'),
        ('publish_tf', 1, 'must be a bool'),
        ('merging.merge_ratio', 1.5, 'must be in [0, 1]'),
        ('merging.cell_size', 0, 'must be >= 1'),
        ('world_frame', '', 'empty'),
        ('scale', float('nan'), 'finite'),
        ('scale', float('inf'), 'finite'),
        ('conf_threshold', float('inf'), 'finite'),
        ('time_jump_tolerance', float('-inf'), 'finite'),
        ('time_jump_tolerance', -0.1, 'at least'),
        ('image_width', 500, 'multiple of 14'),
        ('image_width', 14, 'at least 28'),
        ('max_image_pixels', 0, 'at least'),
        ('no_such_parameter', 1, 'unknown'),
    ],
)
def test_bad_values_are_rejected_with_a_reason(name, value, reason):
    assert reason in params.validate({name: value})


def test_integers_are_accepted_for_floats_and_become_floats():
    assert params.validate({'scale': 2, 'conf_threshold': 0}) is None
    coerced = params.coerce({'scale': 2, 'frame_stride': 2, 'publish_tf': True})
    assert coerced == {'scale': 2.0, 'frame_stride': 2, 'publish_tf': True}
    assert type(coerced['scale']) is float and type(coerced['frame_stride']) is int


def test_the_fixed_frame_is_the_root_of_the_tf_mode():
    frames = {'odom_frame': 'o', 'map_frame': 'm', 'world_frame': 'w'}
    roots = {mode: param_options.fixed_frame({**frames, 'tf_mode': mode}) for mode in TF_MODES}
    assert roots == {'odom': 'o', 'map': 'm', 'camera': 'w', 'none': 'w'}


def test_a_new_anchor_must_be_younger_than_the_re_anchoring_age():
    too_soon = {**params.DEFAULTS, 'anchor.max_frames': 4, 'anchor.overlap': 4}
    assert 'more than anchor.overlap' in params.validate_combination(too_soon)
    assert params.validate_combination({**too_soon, 'anchor.max_frames': 5}) is None


def test_a_camera_frame_cannot_be_the_world_frame():
    same = {**params.DEFAULTS, 'camera_frame': 'vggt_world'}
    assert 'its own parent' in params.validate_combination(same)
    assert params.validate_combination(params.DEFAULTS) is None


def test_poses_from_matches_need_a_model_with_a_flow_head():
    matches = {**params.DEFAULTS, 'pose_source': 'matches'}
    # the released 1B model has none
    assert 'needs a model with a flow head' in params.validate_combination(matches)
    assert params.validate_combination({**matches, 'preset': 'small'}) is None
    assert 'flow' in param_options.session_options({**matches, 'preset': 'small'}).heads
    assert 'flow' not in param_options.session_options(params.DEFAULTS).heads


def test_only_the_documented_parameters_change_at_runtime():
    dynamic = {spec.name for spec in params.PARAMETERS if spec.dynamic}
    assert dynamic == {
        'merging.enabled',
        'conf_threshold',
        'scale',
        'frame_stride',
        'points.decimation',
        'max_image_pixels',
        'time_jump_tolerance',
        'anchor.max_frames',
        'anchor.max_distance',
        'odometry.step_error',
        *(f'publish_{output}' for output in params.OUTPUTS),
    }
    assert not {'checkpoint', 'preset', 'device'} & dynamic


def test_merging_options_follow_the_switch():
    assert param_options.merging_options(params.DEFAULTS) is None
    options = param_options.merging_options({**params.DEFAULTS, 'merging.enabled': True})
    assert options == {
        'merge_start': 0,
        'cell_size': 2,
        'protected_fraction': 0.1,
        'merge_ratio': 1.0,
    }


def test_the_launch_files_own_imports_need_no_torch():
    """`ros2 launch` runs the launch file under the distribution's Python, which may have no torch
    (the node runs from the venv): what it imports of vggt_ros must not pull torch in."""
    imports = [
        f'from {node.module} import {", ".join(alias.name for alias in node.names)}'
        for node in ast.walk(ast.parse(LAUNCH_FILE.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('vggt_ros')
    ]
    assert imports, 'the launch file no longer reads the parameter table'
    check = '; '.join([*imports, 'import sys', "print('torch' in sys.modules)"])
    run = subprocess.run([sys.executable, '-c', check], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == 'False'


def test_map_mode_in_the_models_own_units_is_warned_about():
    map_mode = {**params.DEFAULTS, 'tf_mode': 'map'}
    assert 'map -> odom will be wrong' in params.combination_warning(map_mode)
    for fine in ({'scale_source': 'odometry'}, {'scale': 2.5}, {'tf_mode': 'odom'}):
        assert params.combination_warning({**map_mode, **fine}) is None


def test_multi_view_depth_without_poses_from_matches_is_warned_about():
    values = {**params.DEFAULTS, 'multi_view_depth': True}
    assert 'pose_source' in params.combination_warning(values)
    assert (
        params.combination_warning({**values, 'preset': 'small', 'pose_source': 'matches'}) is None
    )


def test_config_files_are_found_where_pip_installs_them(tmp_path, monkeypatch):
    """A non-editable pip install has no config/ beside the code and no AMENT_PREFIX_PATH: its
    data files are under the environment's prefix, share/vggt_ros/config."""
    installed = tmp_path / 'share' / 'vggt_ros' / 'config'
    installed.mkdir(parents=True)
    (installed / 'only_installed.yaml').write_text('{}\n')
    monkeypatch.setattr(sys, 'prefix', str(tmp_path))
    monkeypatch.delenv('AMENT_PREFIX_PATH', raising=False)
    assert config_files.config_file('only_installed.yaml') == installed / 'only_installed.yaml'
    assert config_files.config_file('small.yaml').parent.parent == ROOT  # the checkout first


def test_fast_dds_without_a_profile_is_said_at_startup():
    assert 'fastdds.xml' in config_files.transport_note('rmw_fastrtps_cpp', {})
    profiled = {'FASTRTPS_DEFAULT_PROFILES_FILE': '/x/fastdds.xml'}
    assert config_files.transport_note('rmw_fastrtps_cpp', profiled) is None
    assert config_files.transport_note('rmw_cyclonedds_cpp', {}) is None
