"""showDocumentation: every action, with its versions and inputs (as the documentation verb),
and the action middleware each names (public/docs.html shows them)."""

from squall import action


@action(
    name="showDocumentation",
    description="Every action this server runs, by version, with its inputs and middleware",
    output_example={"documentation": {"randomNumber": {"1": {"name": "randomNumber"}}}},
)
async def show_documentation(data):
    return {"documentation": data.app.actions.documentation(middleware=True)}
