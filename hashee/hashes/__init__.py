"""HashEE's token hashes: a table from token id to exit layer, built from the training split.

``tokens`` (training statistics) and ``table`` (the :class:`~hashee.hashes.table.TokenHash` lookup) ->
``layers`` (buckets and layer shares to exit layers) -> ``functions`` (one class per hash name: how it orders
or buckets token types; ``cluster``: k-means) -> ``calibration`` (the target speed-up) -> ``build`` ->
``cache`` (on disk); ``settings`` is the configuration of one hash."""
