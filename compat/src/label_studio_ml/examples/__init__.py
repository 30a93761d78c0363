"""``label_studio_ml.examples.<name>``: example folders of an upstream checkout.

The search path is every folder named ``label_studio_ml/examples`` that is on ``sys.path``
(``<checkout>/label_studio_ml/examples``), under an entry of it (``<checkout>``), or above one
(pytest puts ``<checkout>/label_studio_ml/examples/<name>`` there for a test file), as found
when this package is first imported. ``<name>/model.py`` then imports as
``label_studio_ml.examples.<name>.model``, against prelabel's ``label_studio_ml``.
"""

import os

from prelabel.compat.loader import example_folders

__path__ = example_folders(exclude=os.path.dirname(__file__))
