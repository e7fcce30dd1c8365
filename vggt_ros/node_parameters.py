"""The node's parameters on the ROS parameter server, held to the table in vggt_ros.params.

Every parameter is declared from the table with its description and limits; every set, at start-up
or at runtime, is checked by the table's rules (alone and in combination) before it is accepted;
an integer given for a float parameter is stored as that float. `values` is replaced whole on a
set, so a reader (the worker, once per frame) always holds one consistent snapshot.
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from vggt_ros import params


class StartupError(RuntimeError):
    """The node cannot start: a parameter is invalid or the model cannot be loaded."""


def _floats_from_ints(parameters: list[Parameter]) -> list[Parameter]:
    """Runtime sets store an integer given for a float parameter as that float (5 -> 5.0).

    (Declaring skips this callback, so a start-up integer stays one on the parameter server;
    the node's own values are coerced either way.)
    """
    coerced = params.coerce({p.name: p.value for p in parameters})
    return [
        p if coerced[p.name] is p.value else Parameter(p.name, value=coerced[p.name])
        for p in parameters
    ]


def _descriptor(spec: params.ParameterSpec) -> ParameterDescriptor:
    limits = [f'one of {", ".join(spec.choices)}'] if spec.choices else []
    limits += [f'>= {spec.minimum}'] if spec.minimum is not None else []
    limits += [f'<= {spec.maximum}'] if spec.maximum is not None else []
    return ParameterDescriptor(
        description=spec.description,
        additional_constraints='; '.join(limits),
        read_only=not spec.dynamic,
        # A float parameter takes an integer too (conf_threshold:=5); it is stored as a float.
        dynamic_typing=isinstance(spec.default, float),
    )


class NodeParameters:
    """Declares the table's parameters on `node` and keeps their current values."""

    def __init__(self, node: Node) -> None:
        """Raises StartupError for a value (from the command line or a params file) that the
        table refuses."""
        self.values: dict[str, Any] | None = None
        # rclpy before Iron (Humble) has no pre- or post-set callbacks: there a runtime integer for
        # a float parameter stays one on the server (the values are coerced either way), and an
        # accepted set is applied by the check itself.
        post_set = getattr(node, 'add_post_set_parameters_callback', None)
        self._apply_on_check = post_set is None
        if hasattr(node, 'add_pre_set_parameters_callback'):
            node.add_pre_set_parameters_callback(_floats_from_ints)
        # Registered first, so values from the command line or a params file are checked too.
        node.add_on_set_parameters_callback(self._check)
        try:
            declared = node.declare_parameters(
                '', [(spec.name, spec.default, _descriptor(spec)) for spec in params.PARAMETERS]
            )
        except (InvalidParameterValueException, InvalidParameterTypeException) as error:
            raise StartupError(f'invalid parameter: {error}') from error
        values = params.coerce({parameter.name: parameter.value for parameter in declared})
        reason = params.validate_combination(values)
        if reason:
            raise StartupError(f'invalid parameters: {reason}')
        self.values = values
        if post_set is not None:
            post_set(self._apply)

    def _check(self, parameters: list[Parameter]) -> SetParametersResult:
        ours = {p.name: p.value for p in parameters if p.name in params.SPECS}
        reason = params.validate(ours)
        if reason is None and self.values is not None:  # running: check the whole new set
            reason = params.validate_combination({**self.values, **ours})
            if reason is None and self._apply_on_check:
                self._apply(parameters)
        return SetParametersResult(successful=reason is None, reason=reason or '')

    def _apply(self, parameters: list[Parameter]) -> None:
        changed = {p.name: p.value for p in parameters if p.name in params.SPECS}
        self.values = {**self.values, **params.coerce(changed)}
