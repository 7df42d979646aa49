"""The local twin of the SageMaker training: same splits, same XGBoost hyperparameters, a stand-in
anomaly model (scikit-learn's IsolationForest, in place of Random Cut Forest), the same thresholds.

    python -m training [--source PATH|synthetic] [--rows N] [--out DIR] [--report PREFIX]
"""
