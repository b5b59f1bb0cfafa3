"""The CloudWatch embedded metric format, to validate the worker's metric lines against.

``SCHEMA`` is the JSON schema published with the specification
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html,
"Embedded metric format example and JSON schema"), with the limits of its text added where the
schema leaves them out (at most 100 metrics per directive). ``problems`` adds the rules the
schema cannot express: every referenced member is on the root node, a metric's value is a
number or an array of at most 100 numbers, a dimension's value a string.
"""

import json
from typing import Any

from jsonschema import Draft7Validator

UNITS = (
    "Seconds|Microseconds|Milliseconds|Bytes|Kilobytes|Megabytes|Gigabytes|Terabytes|Bits|"
    "Kilobits|Megabits|Gigabits|Terabits|Percent|Count|Bytes/Second|Kilobytes/Second|"
    "Megabytes/Second|Gigabytes/Second|Terabytes/Second|Bits/Second|Kilobits/Second|"
    "Megabits/Second|Gigabits/Second|Terabits/Second|Count/Second|None"
)
NAME = {"type": "string", "pattern": "^(.*)$", "minLength": 1, "maxLength": 255}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Root Node",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "title": "Metadata",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "title": "The Timestamp Schema"},
                "CloudWatchMetrics": {
                    "type": "array",
                    "title": "MetricDirectives",
                    "items": {
                        "type": "object",
                        "title": "MetricDirective",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "properties": {
                            "Namespace": NAME,
                            "Dimensions": {
                                "type": "array",
                                "title": "The Dimensions Schema",
                                "minItems": 1,
                                "items": {
                                    "type": "array",
                                    "title": "DimensionSet",
                                    "minItems": 0,
                                    "maxItems": 9,
                                    "items": NAME,
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "title": "MetricDefinitions",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "title": "MetricDefinition",
                                    "required": ["Name"],
                                    "properties": {
                                        "Name": NAME,
                                        "Unit": {"type": "string", "pattern": f"^({UNITS})$"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}
VALIDATOR = Draft7Validator(SCHEMA)
#: A metric target that is an array holds at most this many values.
MAX_VALUES = 100


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def problems(line: str) -> list[str]:
    """Why ``line`` (one log event) is not a valid EMF document; empty if it is one."""
    try:
        document = json.loads(line)
    except ValueError as error:
        return [f"not JSON: {error}"]
    found = [error.message for error in VALIDATOR.iter_errors(document)]
    if found:
        return found
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension in {name for names in directive["Dimensions"] for name in names}:
            if not isinstance(document.get(dimension), str):
                found.append(f"dimension {dimension!r} is not a string member of the root")
        for metric in directive["Metrics"]:
            value = document.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            if not (all(map(is_number, values)) and 0 < len(values) <= MAX_VALUES):
                found.append(f"metric {metric['Name']!r} has no numeric value: {value!r}")
    return found
