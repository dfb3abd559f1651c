"""Experiments: the steps every run shares (``steps``, ``training``, ``evaluation``), one module per
experiment (``classification``, ``generation``, ``difficulty``) and the dispatcher (``dispatch``)."""
