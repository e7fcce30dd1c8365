"""Procedural scenes with exact ground truth, rendered by ray casting and written as bags.

Real weights cannot be judged here and real bags carry noisy ground truth, so the evaluation is
proven on scenes whose every pose and depth is known exactly: a textured room with boxes and
spheres (`scene`), rendered analytically (`render`), seen by a pinhole camera on a smooth
trajectory (`trajectories`), hand-held (`sequence`) or on a robot (`robot`), written as bags by
`vggt-synth` (`cli`). For training, `variety` draws a world per seed (room, objects, materials,
light, paths) with a fixed split of training and held-out seeds.

Conventions are the model's (DESIGN §4): world z up, camera poses are world_from_camera in the
optical frame (x right, y down, z forward), pixel (u, v) sits at integer coordinates and the
principal point is at exactly (W/2, H/2); depth is z-depth in metres.

    vggt-synth out/walk --trajectory walk --frames 120 --width 320 --height 240
"""

from vggt_ros.synthetic.cli import main
from vggt_ros.synthetic.render import cast_rays, fractal_noise, render, shade, value_noise
from vggt_ros.synthetic.robot import (
    BASE_FRAME,
    DEFAULT_MOUNT,
    GT_BASE_FRAME,
    GT_CAMERA_FRAME,
    ODOM_FRAME,
    ODOMETRY_PER_FRAME,
    ROBOT_PATHS,
    TF_STATIC_TOPIC,
    RobotSequence,
    base_trajectory,
    camera_mount,
    make_robot_sequence,
    planar_increments,
    planar_pose,
    robot_bag_contents,
    wheel_odometry,
    write_robot_bag,
)
from vggt_ros.synthetic.scene import (
    Box,
    Material,
    Scene,
    Sphere,
    clearance,
    default_scene,
    object_distance,
)
from vggt_ros.synthetic.sequence import (
    CAMERA_FRAME,
    TOPICS,
    WORLD_FRAME,
    SyntheticSequence,
    make_sequence,
    write_bag,
)
from vggt_ros.synthetic.trajectories import (
    TRAJECTORIES,
    Orbit,
    Rotate,
    Walk,
    look_at,
    pinhole,
    sample_path,
    scale_intrinsics,
    trajectory,
)
from vggt_ros.synthetic.variety import (
    CAMERA_CLEARANCE,
    HELD_OUT_SEEDS,
    TRAIN_SEEDS,
    World,
    default_world,
    random_scene,
    random_world,
)

__all__ = [
    'BASE_FRAME',
    'CAMERA_CLEARANCE',
    'CAMERA_FRAME',
    'DEFAULT_MOUNT',
    'GT_BASE_FRAME',
    'GT_CAMERA_FRAME',
    'HELD_OUT_SEEDS',
    'ODOMETRY_PER_FRAME',
    'ODOM_FRAME',
    'ROBOT_PATHS',
    'TF_STATIC_TOPIC',
    'TRAIN_SEEDS',
    'TOPICS',
    'TRAJECTORIES',
    'WORLD_FRAME',
    'Box',
    'Material',
    'Orbit',
    'RobotSequence',
    'Rotate',
    'Scene',
    'Sphere',
    'SyntheticSequence',
    'Walk',
    'World',
    'base_trajectory',
    'camera_mount',
    'cast_rays',
    'clearance',
    'default_scene',
    'default_world',
    'fractal_noise',
    'look_at',
    'main',
    'make_robot_sequence',
    'make_sequence',
    'object_distance',
    'pinhole',
    'planar_increments',
    'planar_pose',
    'random_scene',
    'random_world',
    'render',
    'robot_bag_contents',
    'sample_path',
    'scale_intrinsics',
    'shade',
    'trajectory',
    'value_noise',
    'wheel_odometry',
    'write_bag',
    'write_robot_bag',
]
