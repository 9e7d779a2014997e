"""The same ``/swap`` and ``/encode`` written with the servers a user would pick instead of ours.

Each peer is written the way its documentation shows, on the same ONNX files
(``modelrepo.OnnxCodec``, one ONNX Runtime thread like ours) and the same
preprocessing rule and PNG encoder as our service (``shared``). They run from
their own environment (``make bench-venv``: the ``bench`` extra with
``bench/constraints-peers.txt``), since BentoML's OpenTelemetry pins differ
from Ray's.
"""
