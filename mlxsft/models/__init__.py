"""Models: resolve a spec (alias, HF/MLX folder, .gguf file, Hub id), convert it to MLX, load it.

    from mlxsft.models import resolve_model, convert_model, load_mlx
    src = resolve_model("smollm2-135m-instruct")          # ModelSource(kind='alias', path=.../x.gguf, ...)
    convert_model(src.spec, "out/smol", quantize=4)        # an mlx-lm folder
    model, tokenizer, folder = load_mlx("gemma3-270m")     # converted once, then from the cache

Files: ``resolve.py`` (spec -> ModelSource), ``aliases.py`` (embedded models), ``hub.py`` (Hub download),
``checks.py`` (cheap input checks), ``gguf_read.py`` (GGUF header and tensor table, every length checked
against the file size), ``from_gguf.py`` (GGUF -> HF), ``config_fixes.py`` (HF config -> mlx-lm
keys), ``convert.py`` (-> MLX folder), ``cache.py`` (content-keyed cache), ``load.py`` (load for use),
``atomic.py`` (temp folder + rename). Nothing here prints; progress goes through a ``(stage, fraction)``
callback. Every user-caused failure is a one-line ``mlxsft.errors.ModelError``.
"""

from mlxsft.models.aliases import DEFAULT_ALIAS, EMBEDDED_ALIASES, EmbeddedModel
from mlxsft.models.convert import convert_model
from mlxsft.models.load import load_mlx, load_tokenizer, mlx_model_path
from mlxsft.models.resolve import ModelSource, resolve_model

__all__ = ["DEFAULT_ALIAS", "EMBEDDED_ALIASES", "EmbeddedModel", "ModelSource", "convert_model", "load_mlx",
           "load_tokenizer", "mlx_model_path", "resolve_model"]
