"""showDocumentation: every action, with its versions and inputs (as the documentation verb)."""

from squall import action


@action(
    name="showDocumentation",
    description="Every action this server runs, by version, with its inputs",
    output_example={"documentation": {"randomNumber": {"1": {"name": "randomNumber"}}}},
)
async def show_documentation(data):
    return {"documentation": data.app.actions.documentation()}
