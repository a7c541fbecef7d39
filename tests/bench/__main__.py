"""``make bench``: every benchmark, each printing figures beside a reference from the same run."""

from tests.bench import call_path, dtmf, mixer, say, storage

mixer.run()
say.run()
call_path.run()
dtmf.run()
storage.run()
