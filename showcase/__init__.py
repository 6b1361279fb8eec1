"""showcase: personalized showcases (photos + text) that explain recommendations.

Example:
    >>> from showcase import Showcaser                                     # doctest: +SKIP
    >>> Showcaser.load("runs/demo/pipeline").generate_showcase("U0016", "B037").text  # doctest: +SKIP
    >>> from showcase import load_model                                    # doctest: +SKIP
    >>> load_model("runs/demo/models/selector/run/model")                  # doctest: +SKIP
"""
__version__ = "0.1.0"

_API = ("Showcase", "ShowcasePhoto", "Showcaser", "assemble_pipeline", "generate_showcase", "generate_showcases")


def __getattr__(name: str):
    # Imported lazily: `import showcase` stays cheap and touches no model or network.
    if name in _API:
        import showcase.api as api

        return getattr(api, name)
    if name == "load_model":  # like transformers' AutoModel: the class is read from the folder's config.json
        from showcase.pretrained import load_model

        return load_model
    raise AttributeError(f"module 'showcase' has no attribute {name!r}")

