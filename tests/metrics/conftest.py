from __future__ import annotations

import pytest
from _support import Repeat


@pytest.fixture
def repeat() -> type[Repeat]:
    return Repeat
