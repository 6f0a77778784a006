"""The Gradio demo: the page (`ui`), what a click does (`runner`), input checks (`inputs`), per-visitor state
(`session`)."""
