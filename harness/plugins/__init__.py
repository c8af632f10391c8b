"""Built-in plugins: registered through the ``harness`` entry-point group like any third party's."""
