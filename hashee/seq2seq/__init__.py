"""Encoder-decoders with token exits: one adapter per layout (``layouts``: BERT2BERT, BART), loading
(``backbone``), the layer pieces (``parts``), the network (``network``), generation (``generation``) and
its FLOPs (``cost``)."""
