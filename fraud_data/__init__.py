"""Data code shared by the producer, local training and the training custom resource.

Standard library only: the same modules run inside a plain (zip) Lambda during `cdk deploy`.
"""
