%% Top supervisor. Its init runs the backend's setup, so that what must outlive a restart of the
%% session server (the ETS table) belongs to this longer-lived process.
-module(erl_peb_sup).

-behaviour(supervisor).

-export([start_link/1, init/1]).

-spec start_link(erl_peb_config:config()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Config) ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, Config).

-spec init(erl_peb_config:config()) ->
    {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init(#{backend := Backend} = Config) ->
    ok = (erl_peb_store:module(Backend)):setup(Config),
    Server = #{id => erl_peb_session_server,
               start => {erl_peb_session_server, start_link, [Config]},
               restart => permanent,
               shutdown => 10000,
               type => worker,
               modules => [erl_peb_session_server]},
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, [Server]}}.
