"""The user-facing API: load a trained pipeline and generate showcases."""
from showcase.api.explain import Explainer, Explanation
from showcase.api.result import Showcase, ShowcasePhoto
from showcase.api.showcaser import Showcaser, assemble_pipeline, generate_showcase, generate_showcases

__all__ = ["Explainer", "Explanation", "Showcase", "ShowcasePhoto", "Showcaser", "assemble_pipeline",
           "generate_showcase", "generate_showcases"]
