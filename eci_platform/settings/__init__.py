"""Settings, one small module per concern; every value comes through `environment`."""

from eci_platform.settings.celery import *  # noqa: F403
from eci_platform.settings.core import *  # noqa: F403
from eci_platform.settings.database import *  # noqa: F403
from eci_platform.settings.email import *  # noqa: F403
from eci_platform.settings.environment import BUILD_MODE, DEBUG  # noqa: F401
from eci_platform.settings.exports import *  # noqa: F403
from eci_platform.settings.keys import *  # noqa: F403
from eci_platform.settings.observability import *  # noqa: F403
from eci_platform.settings.redis import *  # noqa: F403
from eci_platform.settings.second_factor import *  # noqa: F403
from eci_platform.settings.tenancy import *  # noqa: F403
