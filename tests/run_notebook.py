"""Execute one notebook the way nbdev_test does (flagged cells skipped), in its own process."""
import sys
from pathlib import Path
from nbdev.config import get_config
from nbdev.test import test_nb

nb, force = Path(sys.argv[1]).resolve(), sys.argv[2:]
ok, secs = test_nb(nb, skip_flags=get_config().tst_flags.split(), force_flags=force, basepath=get_config().config_path)
print(f"{nb.name}: {'passed' if ok else 'FAILED'} in {secs:.1f}s")
sys.exit(0 if ok else 1)
