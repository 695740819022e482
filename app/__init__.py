"""The desk's shell: the ``helmdesk`` command, the main window, the engine link."""
