"""What a student's feedback page shows of the hidden tests: their points and message, not their code."""

from __future__ import annotations

import re

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode


class HideHiddenTests(NbGraderPreprocessor):
    """Feedback shows each test cell's name, points, visible code and the message it failed
    with — not the code between the hidden-test delimiters, which nbgrader's feedback shows
    by default (torch references included), nor the traceback lines quoting it.
    ``c.HideHiddenTests.enabled = False`` in nbgrader_config.py shows them."""

    placeholder = Unicode("# (hidden tests: not shown in feedback)").tag(config=True)
    begin_delimiter = Unicode("### BEGIN HIDDEN TESTS").tag(config=True)
    end_delimiter = Unicode("### END HIDDEN TESTS").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        block = re.compile(re.escape(self.begin_delimiter) + ".*?" + re.escape(self.end_delimiter), re.S)
        if cell.cell_type == "code" and block.search(cell.source):
            cell.source = block.sub(self.placeholder, cell.source)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
