%% The erl_peb application: reads and checks its configuration, then starts the supervisor.
-module(erl_peb_app).

-behaviour(application).

-export([start/2, stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case erl_peb_config:load() of
        {ok, Config} -> erl_peb_sup:start_link(Config);
        {error, _} = Error -> Error
    end.

-spec stop(term()) -> ok.
stop(_State) ->
    ok.
