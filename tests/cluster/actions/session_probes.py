"""Test-only actions for the cluster tier's session tests: store and read connection.session,
and a join hook that lets only the team the session names into a ``team-*`` room."""

from squall import ChatMiddleware, Forbidden, Input, action


@action(
    name="sessionSet",
    description="Store `value` under `key` in the caller's session",
    inputs={"key": Input(required=True), "value": Input(required=True)},
)
async def session_set(data):
    data.connection.session[data.params["key"]] = data.params["value"]
    return {"session": dict(data.connection.session)}


@action(name="sessionGet", description="The caller's session")
async def session_get(data):
    return {"session": dict(data.connection.session), "server": data.app.id}


def _team_only(connection, room):
    team = room.removeprefix("team-")
    if team != room and connection.session.get("team") != team:
        raise Forbidden(f"only team {team} may join {room}")


teams = ChatMiddleware(name="sessionTeams", join=_team_only)
