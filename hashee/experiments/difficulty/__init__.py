"""The learnability-of-difficulty experiments (docs/methods.md section 5): model-defined (``model``) and
human-defined (``human``) difficulty, their predictors (``predictors``) and scoring (``scoring``)."""
