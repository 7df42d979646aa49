"""Local stand-ins for the AWS services the pipeline uses, each behaving as the real one does for
this app: a Redis Stack server, moto's Kinesis, Lambda's Kinesis event source mapping, the
SageMaker runtime serving the locally trained models, and Lambda's context object.
"""
