"""Tasks: what a task is (``spec``, ``generation``), where its rows come from (``sources``, ``readers``, ``hub``,
``embedded``), how they are split (``splits``) and loaded (``load``), and how predictions are scored
(``metrics``, ``rouge``)."""
