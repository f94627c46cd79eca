"""The Mesos v1 HTTP APIs' shared pieces: RecordIO framing and the JSON form of messages.

Corral's protocol types already use the proto3 JSON shapes Mesos uses (ids as
``{"value": ...}``, resources as lists of ``{name, type, scalar|ranges|set}``, durations as
``{"nanoseconds": ...}``); ``json_compatible(value.to_wire())`` is their v1 JSON and
``Type.from_wire(json)`` reads it back (bytes as padded base64, unknown keys ignored).
"""
