"""One place that maps the config's architecture names (`x86_64`, `arm64`) to CDK's enums.

The image's platform must match where it runs, or an Apple-silicon laptop pushes an arm64 image to
an x86 Lambda or Fargate task: every image asset and its runtime read the same name through these.
"""

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_lambda as lambda_

IMAGE_PLATFORM = {"x86_64": ecr_assets.Platform.LINUX_AMD64, "arm64": ecr_assets.Platform.LINUX_ARM64}
LAMBDA_ARCHITECTURE = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
ECS_CPU_ARCHITECTURE = {"x86_64": ecs.CpuArchitecture.X86_64, "arm64": ecs.CpuArchitecture.ARM64}
