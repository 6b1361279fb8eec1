"""showcase: personalized showcases (photos + text) that explain recommendations.

Example:
    >>> from showcase import Showcaser                                     # doctest: +SKIP
    >>> Showcaser.load("runs/demo/pipeline").generate_showcase("U0016", "B037").text  # doctest: +SKIP
"""
__version__ = "0.1.0"

_API = ("Showcase", "ShowcasePhoto", "Showcaser", "assemble_pipeline", "generate_showcase")


def __getattr__(name: str):
    # Imported lazily: `import showcase` stays cheap and touches no model or network.
    if name in _API:
        import showcase.api as api

        return getattr(api, name)
    raise AttributeError(f"module 'showcase' has no attribute {name!r}")


def generate_showcases(pairs, pipeline, k: int = 3, seed: int = 0):
    """Batch form of `generate_showcase`: a list of showcases for `(user_id, business_id)` pairs."""
    from showcase.api.showcaser import _cached
    from pathlib import Path

    return _cached(str(Path(pipeline).resolve())).generate_showcases(pairs, k=k, seed=seed)
