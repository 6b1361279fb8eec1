"""Find WordNet 3.0 for METEOR without the network, or fail with instructions.

Search order (:func:`load_wordnet`):

1. the folder in ``$METRICS_WORDNET_DIR`` (WordNet's dict files: copied as in 3.);
2. otherwise nltk's own data (``nltk.download('wordnet')``, found on ``nltk.data.path``);
3. Debian's ``wordnet-base`` files in ``/usr/share/wordnet`` (``apt-get install wordnet-base``). They lack the
   ``lexnames`` file that nltk's reader needs, so they are copied once (36 MB) into the nltk data folder
   ``$METRICS_CACHE`` (default ``~/.cache/showcase-metrics``)``/nltk_data/corpora/wordnet`` together with a
   ``lexnames`` written from WordNet 3.0's fixed list of lexicographer files (``man 5 lexnames``); that folder is
   added to ``nltk.data.path`` and nltk's own ``nltk.corpus.wordnet`` reads it.

When none is found, :class:`WordNetUnavailableError` says how to install one; METEOR never returns a number computed
without synonyms.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

DEBIAN_DIR = Path("/usr/share/wordnet")
REQUIRED = ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb", "index.adj",
            "index.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc")
_LEXNAMES = ("adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
             "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
             "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
             "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
             "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
             "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather "
             "adj.ppl").split()
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
INSTALL_HELP = (
    "METEOR needs WordNet 3.0 and none was found. Install it with one of:\n"
    "  * Debian/Ubuntu: `apt-get install wordnet-base` (found automatically in /usr/share/wordnet);\n"
    "  * online: `python -c \"import nltk; nltk.download('wordnet')\"`;\n"
    "  * or point $METRICS_WORDNET_DIR at a folder holding WordNet's data.* / index.* / *.exc files "
    "(and nltk's `lexnames`, which is written for you when missing)."
)
_cache: dict = {}


class WordNetUnavailableError(RuntimeError):
    """Raised when METEOR is asked for and no WordNet can be loaded."""


def lexnames_text() -> str:
    """The ``lexnames`` file of WordNet 3.0: ``index<TAB>name<TAB>syntactic category`` per line."""
    return "".join(f"{i:02d}\t{name}\t{_POS_NUMBER[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))


def _has_files(folder: Path) -> bool:
    return all((folder / f).is_file() for f in REQUIRED)


def _cache_root() -> Path:
    return Path(os.environ.get("METRICS_CACHE", Path.home() / ".cache" / "showcase-metrics")) / "nltk_data"


def prepare_folder(source: Path, cache_root: Optional[Path] = None) -> Path:
    """Copy WordNet files from ``source`` into ``<cache_root>/corpora/wordnet`` (adding ``lexnames`` when missing)
    and return ``cache_root``, an nltk data folder. Nothing is copied when the cache is already complete."""
    root = Path(cache_root or _cache_root())
    target = root / "corpora" / "wordnet"
    if _has_files(target) and (target / "lexnames").is_file():
        return root
    tmp = target.with_name("wordnet.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in source.iterdir():
        if f.is_file():
            shutil.copyfile(f, tmp / f.name)
    if not (tmp / "lexnames").is_file():
        (tmp / "lexnames").write_text(lexnames_text())
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return root


def _nltk_wordnet(extra_root: Optional[Path] = None):
    import nltk
    from nltk.corpus import wordnet

    if extra_root is not None and str(extra_root) not in nltk.data.path:
        nltk.data.path.append(str(extra_root))
    wordnet.ensure_loaded()
    return wordnet


def load_wordnet():
    """Load (once) nltk's WordNet reader; raise :class:`WordNetUnavailableError` when there is none."""
    if "wn" in _cache:
        return _cache["wn"]
    errors = []
    sources = [Path(os.environ["METRICS_WORDNET_DIR"])] if os.environ.get("METRICS_WORDNET_DIR") else []
    if not sources:
        try:
            _cache["wn"] = _nltk_wordnet()
            return _cache["wn"]
        except LookupError:
            errors.append("nltk data has no 'wordnet'")
    for source in sources + [DEBIAN_DIR]:
        if _has_files(source):
            _cache["wn"] = _nltk_wordnet(prepare_folder(source))
            return _cache["wn"]
        errors.append(f"{source} lacks WordNet files ({', '.join(REQUIRED[:2])}, ...)")
    raise WordNetUnavailableError(INSTALL_HELP + "\n(looked at: " + "; ".join(errors) + ")")


def wordnet_available() -> bool:
    """True when :func:`load_wordnet` finds a WordNet."""
    try:
        load_wordnet()
        return True
    except WordNetUnavailableError:
        return False
