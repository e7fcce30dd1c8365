"""Run the vggt_ros stream node on a camera topic, optionally with rviz2.

    ros2 launch vggt_ros stream.launch.py image:=/camera/image_raw \\
        checkpoint:=$HOME/vggt_weights/checkpoints.pth use_rviz:=true

Every node parameter lives in params_file (default: the installed config/stream.yaml); the
arguments checkpoint, tf_mode and use_sim_time override it. For a bag: `ros2 bag play BAG
--clock` and use_sim_time:=true.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from vggt_ros import config_files, param_options, params

PACKAGE = 'vggt_ros'
INPUTS = ('image', 'depth', 'camera_info')  # launch arguments naming the node's input topics


def _node_parameters(context):
    """The params file, then the node parameters given as launch arguments."""
    overrides = {
        'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool),
    }
    checkpoint = LaunchConfiguration('checkpoint').perform(context)
    if checkpoint:  # empty keeps the params file's checkpoint
        overrides['checkpoint'] = ParameterValue(checkpoint, value_type=str)
    tf_mode = LaunchConfiguration('tf_mode').perform(context)
    if tf_mode:  # empty keeps the params file's tf_mode
        overrides['tf_mode'] = ParameterValue(tf_mode, value_type=str)
    return [LaunchConfiguration('params_file'), overrides]


def _fixed_frame(context):
    """rviz's fixed frame: the root of the outputs in the tf_mode in force (odom, map or the
    world frame), from the table's defaults, the params file and the tf_mode argument."""
    values = {
        **params.DEFAULTS,
        **config_files.read_params_file(LaunchConfiguration('params_file').perform(context)),
    }
    values['tf_mode'] = LaunchConfiguration('tf_mode').perform(context) or values['tf_mode']
    return param_options.fixed_frame(values)


def _nodes(context):
    inputs = (LaunchConfiguration(name).perform(context) for name in INPUTS)
    stream = Node(
        package=PACKAGE,
        executable='stream_node',
        name=params.NODE_NAME,
        namespace=LaunchConfiguration('namespace'),
        parameters=_node_parameters(context),
        # Both image transports, so image_transport: compressed needs no other argument.
        remappings=config_files.input_remappings(*inputs),
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
        output='screen',
        emulate_tty=True,
    )
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        arguments=[
            '-d',
            str(config_files.rviz_config(LaunchConfiguration('namespace').perform(context))),
            '--fixed-frame',
            _fixed_frame(context),
        ],
        parameters=[
            {
                'use_sim_time': ParameterValue(
                    LaunchConfiguration('use_sim_time'), value_type=bool
                ),
            }
        ],
        condition=IfCondition(LaunchConfiguration('use_rviz')),
        output='screen',
    )
    return [stream, rviz]


def _fastdds_profile():
    """Fast DDS transports for camera-sized images (config/fastdds.xml, README "Environment")
    for the node and rviz, unless a profile was chosen; Fast DDS 2 (Humble, Jazzy) reads the old
    variable name. A camera driver started elsewhere needs the same export."""
    names = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
    if os.environ.keys() & set(names):
        return []
    name = names[1] if os.environ.get('ROS_DISTRO') in ('humble', 'jazzy') else names[0]
    profile = os.path.join(get_package_share_directory(PACKAGE), 'config', 'fastdds.xml')
    return [SetEnvironmentVariable(name, profile)]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory(PACKAGE), 'config', 'stream.yaml')
    return LaunchDescription(
        [
            *_fastdds_profile(),
            DeclareLaunchArgument(
                'image',
                default_value='/camera/image_raw',
                description='Camera topic (sensor_msgs/Image); with image_transport: compressed, '
                'its /compressed sibling is used.',
            ),
            DeclareLaunchArgument(
                'depth',
                default_value='',
                description='Metric depth image registered to the camera (scale_source: depth). '
                "Empty: the node's own depth input.",
            ),
            DeclareLaunchArgument(
                'camera_info',
                default_value='',
                description="The camera's CameraInfo (depth.registered's, and the check of the "
                "model's view). Empty: the image topic's camera_info sibling "
                '(/camera/camera_info for /camera/image_raw).',
            ),
            DeclareLaunchArgument(
                'params_file',
                default_value=default_params,
                description='YAML file with the node parameters.',
            ),
            DeclareLaunchArgument(
                'checkpoint',
                default_value='',
                description='Weights (file or Hugging Face id). Empty: the params file value.',
            ),
            DeclareLaunchArgument(
                'tf_mode',
                default_value='',
                description='odom, map, camera or none (REP-105 layouts; see the README). Empty: '
                'the params file value.',
            ),
            DeclareLaunchArgument(
                'namespace', default_value='', description='Namespace of the node and its topics.'
            ),
            DeclareLaunchArgument(
                'use_sim_time',
                default_value='false',
                description='Follow /clock (bag replay with --clock).',
            ),
            DeclareLaunchArgument(
                'use_rviz',
                default_value='false',
                description='Start rviz2 with config/stream.rviz.',
            ),
            DeclareLaunchArgument(
                'log_level',
                default_value='info',
                description='Log level of the stream node: debug, info, warn, error or fatal.',
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
