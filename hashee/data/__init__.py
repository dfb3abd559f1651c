"""Lightning data modules: length-grouped batches and padding (``batching``), the classification data module
(``classification``) and the generation one (``seq2seq``)."""
