"""``make bench``: every benchmark, each printing figures beside a reference from the same run."""

from tests.bench import call_path, dtmf, mixer

mixer.run()
call_path.run()
dtmf.run()
