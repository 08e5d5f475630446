"""Where the Cloud Eye and IAM endpoints of a region are, and where the API is not offered."""

from __future__ import annotations

import re
from typing import Final

from cloudeye_operator.cloudeye.errors import RequestValidationError, UnsupportedRegionError
from cloudeye_operator.cloudeye.models import UNSUPPORTED_REGIONS

# The shape of the cloud's region ids (cn-north-4, ap-southeast-1), also the CRD's pattern (a test checks).
REGION_ID_PATTERN: Final = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
CES_ENDPOINT_TEMPLATE: Final = "https://ces.{region}.myhuaweicloud.com"
IAM_ENDPOINT_TEMPLATE: Final = "https://iam.{region}.myhuaweicloud.com"
ECS_ENDPOINT_TEMPLATE: Final = "https://ecs.{region}.myhuaweicloud.com"


def check_region(region: str) -> str:
    """Refuse, locally and clearly, a malformed region or one where the API is not offered."""
    if not REGION_ID_PATTERN.match(region):
        raise RequestValidationError("region", f"{region!r} is not a region id such as 'cn-north-4'")
    if region in UNSUPPORTED_REGIONS:
        raise UnsupportedRegionError(region, UNSUPPORTED_REGIONS[region])
    return region


def ces_endpoint(region: str) -> str:
    return CES_ENDPOINT_TEMPLATE.format(region=check_region(region))


def ecs_endpoint(region: str) -> str:
    return ECS_ENDPOINT_TEMPLATE.format(region=check_region(region))


def iam_endpoint(region: str) -> str:
    return IAM_ENDPOINT_TEMPLATE.format(region=check_region(region))
