from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'vggt_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    # The shipped weights are read (memory-mapped) from the installed file.
    package_data={f'{PACKAGE}.weights': ['*.safetensors', '*.md', '*.png']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='vggt_ros maintainers',
    maintainer_email='vggt_ros@example.com',
    description='StreamVGGT visual geometry for ROS 2: TF poses, depth and point clouds.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'stream_node = vggt_ros.node:main',
            'vggt-bench = vggt_ros.bench.cli:main',
            'vggt-synth = vggt_ros.synthetic:main',
            'vggt-eval = vggt_ros.evaluation.cli:main',
            'vggt-train = vggt_ros.training.train:main',
            'evaluate = vggt_ros.evaluation.cli:main',
        ],
    },
)
