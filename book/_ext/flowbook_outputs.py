"""A page must not show an error: the build warns (and with ``-W`` fails) on any error output.

A cell that raises stops the build already (``allow_errors: false``). Some errors are shown
without stopping the cell: IPython displays an exception raised while drawing a figure, which is
how ``flowbook.layout`` refuses an unreadable figure. MyST-NB renders such an output as a literal
block with the classes ``output traceback``; this extension turns each one into a build warning.
"""
from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)


def warn_on_error_outputs(app, doctree, docname):
    for block in doctree.findall(nodes.literal_block):
        if "traceback" in block.get("classes", []):
            lines = [line for line in block.astext().strip().splitlines() if line.strip()]
            first_error = next((line for line in lines if "Error" in line), lines[-1] if lines else "")
            logger.warning(f"the page shows an error output: {first_error.strip()[:200]}", location=block)


def setup(app):
    app.connect("doctree-resolved", warn_on_error_outputs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
